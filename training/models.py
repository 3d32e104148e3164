"""The three model families of the original study, built so that export needs no surgery.

Every Keras model takes plain RGB 0-255 ``[N, H, W, 3]``; scaling to the backbone's range is
its first layer. Each ends in the same head, by name:
``features`` (last convolutional map) -> ``pool`` (global average) -> ``dropout`` ->
``logits`` (dense) -> ``probabilities`` (softmax). A global-average-pooling + dense head
makes the class activation map exact: ``cam[c] = features @ logits.kernel[:, c]``.
"""

from __future__ import annotations

from pathlib import Path

ARCHS = ("baseline", "cnn", "mobilenetv2")
FEATURES = "features"


def _head(keras, x, n_classes: int, dropout: float):
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(n_classes, name="logits")(x)
    return keras.layers.Softmax(name="probabilities")(x)


def build_cnn(n_classes: int, size: int = 224):
    """Custom CNN with 5 convolutional layers, sized to train on a 2-core CPU.

    A strided 5x5 first layer and a pooling after each of the next layers put the cost
    (~0.13 GFLOP per image) well below MobileNetV2's, so it trains from scratch for enough
    epochs on a 2-core CPU; batch normalisation lets it converge in a few. The last
    convolution's 7x7 map (at 224 input) is the heatmap's resolution, as for MobileNetV2.
    """
    import keras

    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    spec = [(16, 5, 2, True), (32, 3, 1, True), (64, 3, 1, True), (128, 3, 1, True), (256, 3, 1, False)]
    for k, (filters, kernel, stride, pool) in enumerate(spec, start=1):
        x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"conv{k}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{k}")(x)
        x = keras.layers.ReLU(name=FEATURES if k == len(spec) else f"relu{k}")(x)
        if pool:
            x = keras.layers.MaxPooling2D(name=f"pool{k}")(x)
    return keras.Model(inputs, _head(keras, x, n_classes, 0.3), name="cnn")


def build_mobilenetv2(n_classes: int, weights: str | Path | None, size: int = 224):
    """ImageNet MobileNetV2 (local weights file, never a download) with the shared head.

    The backbone is built on the scaled input tensor so its layers sit in the same graph as
    the head: export reaches the last feature map by name, no nested model to unwrap.
    """
    import keras

    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    base = keras.applications.MobileNetV2(input_tensor=x, include_top=False, weights=None, alpha=1.0)
    if weights is not None:
        base.load_weights(str(weights))
    feats = keras.layers.Activation("linear", name=FEATURES)(base.output)
    model = keras.Model(inputs, _head(keras, feats, n_classes, 0.2), name="mobilenetv2")
    return model


def backbone_layers(model) -> list:
    """The layers that belong to the pretrained MobileNetV2 backbone (not scale, not head)."""
    head = {"image", "scale", FEATURES, "pool", "dropout", "logits", "probabilities"}
    return [layer for layer in model.layers if layer.name not in head]


def set_trainable_top(model, first_block: int | None) -> None:
    """Freeze the backbone (``None``) or unfreeze it from ``block_<first_block>`` upwards.

    Batch-normalisation layers stay frozen in both phases: with small CPU batches their
    running statistics would drift away from the ImageNet ones the weights expect.
    """
    import keras

    unfrozen = False
    for layer in backbone_layers(model):
        if first_block is not None and layer.name.startswith(f"block_{first_block}_"):
            unfrozen = True
        layer.trainable = unfrozen and not isinstance(layer, keras.layers.BatchNormalization)


def build_baseline(n_components: int = 100, seed: int = 0):
    """PCA + logistic regression on 64x64 greyscale pixels, the study's linear baseline."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(),
        PCA(n_components=n_components, random_state=seed),
        LogisticRegression(max_iter=2000, class_weight="balanced"),
    )
