"""Documents: reading files into text with page offsets (``loading``), splitting them into
chunks with character offsets (``chunking``), and walking folders of them (``folders``)."""
