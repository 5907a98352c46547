"""The plugin machinery: hook specs (``spec``), markers (``marker``), discovery and the
typed facade (``manager``), and the interface plugins get of the hub (``api``)."""
