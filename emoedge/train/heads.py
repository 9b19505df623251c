"""Starting a model from another one: a fresh classifier on kept features (:func:`replace_head`), and
weights copied layer by layer by name and shape (:func:`copy_layers_by_name`)."""

from __future__ import annotations


def replace_head(model, num_classes: int, keep: list[int | None] | None = None):
    """Keep the features of ``model`` and put a fresh classifier for ``num_classes`` on top. ``keep``:
    for each new class, the index of the same class in the old classifier, whose weights the new
    one starts from (a dense classifier only), or None for a class the old one lacks (fresh weights,
    the old classifier's mean bias)."""
    import keras
    from keras import layers

    old_k = model.output_shape[-1]
    # the classifier: last layer with weights whose output has old_k channels
    clf = None
    for layer in reversed(model.layers):
        if layer.weights and layer.output.shape[-1] == old_k:
            clf = layer
            break
    if clf is None:
        raise ValueError(f"cannot find the classifier layer of {model.name}")
    feats = clf.input
    if len(feats.shape) == 4:
        x = layers.Conv2D(num_classes, 3, padding="same", name="class_conv_new")(feats)
        x = layers.GlobalAveragePooling2D(name="gap_new")(x)
    else:
        dense = layers.Dense(num_classes, name="probs_new_dense")
        x = dense(feats)
        if keep is not None and isinstance(clf, layers.Dense) and clf.use_bias:
            w, b = clf.get_weights()
            new_w, new_b = dense.get_weights()
            for j, i in enumerate(keep):
                if i is None:
                    new_b[j] = b.mean()
                else:
                    new_w[:, j], new_b[j] = w[:, i], b[i]
            dense.set_weights([new_w, new_b])
    out = layers.Activation("softmax", name="probs_new", dtype="float32")(x)  # float32 even in mixed precision
    return keras.Model(model.input, out, name=model.name + "_finetuned")


def copy_layers_by_name(src, dst) -> tuple[list[str], list[str]]:
    """Copy into ``dst`` the weights of every layer that ``src`` has under the same name with the
    same weight shapes. Returns (copied, left fresh) names of ``dst``'s layers that have weights."""
    by_name = {layer.name: layer for layer in src.layers}
    copied, fresh = [], []
    for layer in dst.layers:
        if not layer.weights:
            continue
        other = by_name.get(layer.name)
        if other is not None and [w.shape for w in other.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(other.get_weights())
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    return copied, fresh
