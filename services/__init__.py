"""The lab's own services, one folder each; every image builds here with services/Dockerfile."""
