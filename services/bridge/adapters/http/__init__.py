"""HTTP adapter of the bridge service: flask-smorest blueprints and marshmallow schemas."""
