"""The browser viewer of exported materials (``neumip-view``): a static WebGL2 page in
``static/`` and the standard-library HTTP server that serves it with the export folders."""
