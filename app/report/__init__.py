"""``matextract show``: a results file as one self-contained HTML page (no server, no network):
each document's text with its values marked by confidence, beside the record."""
