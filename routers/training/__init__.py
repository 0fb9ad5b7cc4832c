"""Training: the training-data mix (``routers.training.data``) and the trainers of each router.

``routers.training.data`` turns a configured mix of preference sources into strong-vs-weak
labelled rows (paper, section 4.1); the trainers consume those rows and write checkpoints.
"""
