"""matextract's bundled data, installed as the package ``matextract_data`` (see setup.py):
the NERRE benchmark (``nerre/``, MIT), sample documents (``samples/``) and the shipped LoRA
adapters (``adapters/``). Code finds these through ``extraction.resources``, never by path."""
