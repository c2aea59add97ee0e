"""Camera backends. Each implements ``Camera``; the camera node publishes any of them."""
