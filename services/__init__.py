"""The lab's own services, each in its folder with its Dockerfile; images build from here."""
