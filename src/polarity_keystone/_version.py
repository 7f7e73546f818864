__version__ = "0.1.0"

PUBLISHED_IMAGES = "ghcr.io/polarity/keystone"
"""Where a release publishes Keystone's images, tagged with `__version__`: the gate image at this name,
each of Keystone's own sandbox images `<name>` at `PUBLISHED_IMAGES-<name>` (the release workflow, the
GitHub Action and the GitLab component use the same names)."""
