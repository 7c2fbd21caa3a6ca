"""Readers of a document: text layers, OCR engines, image preparation, the four fields."""
