"""The bridge service's application: commands and queries over the frame and the libraries."""
