"""Names shared by the engine, the Processing algorithms and the docks, importable without QGIS or torch.

Each tuple lists the values a parameter accepts, in the order of its choices in the dialogs.
"""
DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when present, else the CPU
ENGINES = ("auto", "torch", "onnx")  # auto: ONNX Runtime on the CPU when installed, else PyTorch
NORMALIZATIONS = ("package", "scene")  # the training chips' statistics, or the predicted raster's own
