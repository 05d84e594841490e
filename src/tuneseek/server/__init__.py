"""The HTTP face of tuneseek: an API over one library (``tuneseek serve``), served by FastAPI and uvicorn.

Like the command line, it calls :class:`~tuneseek.library.Library` and answers with the results'
``to_dict()``; it never reaches into engines or stores.
"""
