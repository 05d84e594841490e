"""Training: data pipelines, Lightning tasks, and runs that end in a checkpoint folder."""
