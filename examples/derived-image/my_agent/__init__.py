"""An ADK phone agent packaged for the callbridge image (examples/derived-image)."""
