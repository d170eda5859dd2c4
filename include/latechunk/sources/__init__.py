"""Where documents come from: source objects, and their text extracted from each supported format."""
