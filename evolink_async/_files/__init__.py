"""Local files: image header probes, safe result names and paths, bounded downloads."""
