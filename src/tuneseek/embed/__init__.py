"""The extractors' networks in use: tags and vectors from audio, and trained runs ready for a library.

* :mod:`~tuneseek.embed.weights` obtains the pretrained musicnn weights (read from the original
  TensorFlow checkpoints, converted and cached) and :mod:`~tuneseek.embed.musicnn_extractor`
  runs the tagger and the multi-scale embedder on 16 kHz audio, whole or streamed;
* :mod:`~tuneseek.embed.trained` runs a tagger, classifier or embedding model made by
  ``tuneseek train`` on audio;
* :mod:`~tuneseek.embed.text_audio` projects stored musicnn segments and text queries into the
  joint space of a ``tuneseek train text-audio`` run.

The networks themselves are in :mod:`tuneseek.models`. Importing this package is cheap: torch is
only imported by the modules that run a network.
"""
