"""Model builders: one module per architecture family turns a config and its weights into a
Graph of native ops (decoders here; encoders in a later module)."""
