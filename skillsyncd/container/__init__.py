"""Installing skillsyncd into a gateway image and running it there as supervisord's neighbour.

dockerfile: what the image starts; install: the plan of edits; __main__: the command that
writes it (run by apply-dockerfile-patch.sh); supervise: PID 1 in the image; lock: the
hashed constraints file the image installs from.
"""
