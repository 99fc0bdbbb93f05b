"""Classes on disk: enrolled students' encodings and thumbnails, and each class's join code."""
