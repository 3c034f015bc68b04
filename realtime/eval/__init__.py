"""`swapcam eval`, the project's ruler: :mod:`realtime.eval.measures` (image and series measures),
:mod:`realtime.eval.runner` (the pipeline over a clip, every frame measured), :mod:`realtime.eval.cli` (the command
and what each number means). Landmark measures (eye/mouth openness, corner lift, head pose) live in
:mod:`realtime.landmarks.measures`, shared with the live stages."""
