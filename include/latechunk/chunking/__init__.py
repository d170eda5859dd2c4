"""How a document is cut into chunks: the settings, the text's cut points and the token and character spans."""
