"""Models behind interfaces: embedders (ONNX, OpenAI-compatible, Bedrock),
provider clients, and the bundled ONNX files."""
