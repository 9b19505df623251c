"""The fixed text of the model cards (:mod:`emoedge.convert.modelcard`): what a card says about
the data a model was trained and tested on, its uses and the law on them, and its privacy behaviour."""

# The "Lawful use" line of every card's "Intended and unintended uses" section (see README.md, "Lawful use").
LAWFUL_USE = (
    "- Lawful use: in the EU, the AI Act (Regulation (EU) 2024/1689, Article 5(1)(f), applicable since "
    "2 February 2025) prohibits placing on the market, putting into service or using AI systems to infer "
    "emotions of a natural person in the areas of workplace and education institutions, except where the "
    "system is intended for medical or safety reasons. Do not deploy this model in an EU workplace or "
    "education institution (a classroom, or a kiosk staffed by employees who face its camera) without such "
    "a basis; the runtime's `classroom-sensor-rpi4` profile refuses to start until `deployment.purpose` and "
    "`deployment.jurisdiction` are set, and stores them with every record. This is not legal advice.")


# What a card says about the data a model was trained and tested on, by the dataset's format.
DATA_FACTS = {
    "fer2013": {
        "id": "fer2013", "name": "FER2013",
        "problems": (
            "- Known problems of the data: FER2013 labels agree with the FER+ crowd majority on only ~68% of rows "
            "(label noise caps achievable accuracy); ~1,300 groups of exact duplicate images, ~270 of them shared "
            "between Training and PublicTest (a small leak that flatters test accuracy); 12 blank images; strong "
            "class imbalance (disgust 436 training images against happy 7,215). Faces are web images, mostly "
            "frontal, skewed toward adults; no demographic labels exist, so performance across groups is "
            "unmeasured.")},
    "ferplus": {
        "id": "ferplus", "name": "FER+",
        "problems": (
            "- The data: FER+ (Barsoum et al. 2016) relabels the FER2013 images by 10 crowd votes each; the label "
            "is the FERPlus majority (single votes dropped, the top emotion kept if it holds more than half of the "
            "rest and is not unknown / not a face), so faces without a majority and non-faces are left out, and "
            "the test split is the majority-labelled part of FER2013 `PublicTest`. Known problems: `contempt` "
            "and `disgust` (119 training faces each) are rare; ~1,300 groups of exact duplicate images, some "
            "shared between Training and PublicTest; faces are web images, mostly frontal, skewed toward adults; "
            "no demographic labels exist, so performance across groups is unmeasured.")},
    "ferplus7": {
        "id": "ferplus", "name": "FER+ (7 classes)",
        "problems": (
            "- The data: FER+ (Barsoum et al. 2016) relabels the FER2013 images by 10 crowd votes each; here on "
            "FER2013's 7 classes (`--labels ferplus7`): the label is the FERPlus majority (single votes dropped, "
            "the top emotion kept if it holds more than half of the rest and is not unknown / not a face), faces "
            "whose majority is contempt are left out, and every face's vote distribution (the training target) "
            "drops its contempt, unknown and not-a-face votes and is renormalised over the 7 emotions. Faces "
            "without a majority, with an unknown/not-a-face majority and non-faces are left out of training and "
            "test. The test split is the majority-labelled part of FER2013 `PublicTest`. Known problems: "
            "`disgust` (119 training faces) and `fear` (532) are rare; ~1,300 groups of exact duplicate images, "
            "some shared between Training and PublicTest; faces are web images, mostly frontal, skewed toward "
            "adults; no demographic labels exist, so performance across groups is unmeasured.")},
}


# Every card's last two sections (before the sections a shipment adds: quantization, calibration, ...).
USES_SECTION = (
    "## Intended and unintended uses",
    "- Intended: aggregate, anonymous estimates of displayed facial expressions (e.g. share of smiling "
    "faces in a room over an interval) on embedded devices, with the uncertainty made visible.",
    "- Not intended: inferring a person's inner emotional state, intent, honesty or mental health; "
    "decisions about individuals (hiring, grading, policing, access); identifying people. Expressions "
    "differ across cultures and people; a posed or suppressed expression is not a feeling.",
    "- Known limits: 48x48 grayscale crops lose detail; accuracy drops on profile views, occlusion, low "
    "light and very small faces; `disgust` and `fear` are the weakest classes (see recall above).",
    LAWFUL_USE,
)
PRIVACY_SECTION = (
    "## Privacy behaviour",
    "- The model sees only a 48x48 grayscale crop per face; the runtime stores no image or crop unless "
    "explicitly asked to.",
)
