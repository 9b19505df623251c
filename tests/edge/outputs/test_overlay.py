"""The display sink (emoedge.edge.outputs.overlay) on a headless OpenCV."""




def test_display_on_headless_opencv_is_a_clear_error():
    import cv2

    from emoedge.edge.outputs.overlay import DisplaySink

    try:
        sink = DisplaySink()
    except RuntimeError as exc:
        assert "no window support" in str(exc) and "--no-display" in str(exc)
    else:  # a GUI OpenCV with a display: the window opened
        sink.close()
        assert hasattr(cv2, "imshow")
