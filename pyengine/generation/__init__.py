"""Text generation: sampling, the decode loop, streaming, chat templates."""
