"""Protocol code shared by the lab's own services: OAuth requests, SVID sources, web helpers."""
