"""The engine: model contract, model inputs, classification, studies, the stream of files to answers and how it uses the cores."""
