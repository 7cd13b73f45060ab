"""Export: the whole pipeline as one ONNX graph, checked for parity, in a verified bundle.

``bundle`` and ``runtime`` import neither scikit-learn nor skl2onnx: the server uses them.
"""
