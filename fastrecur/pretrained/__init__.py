"""Models shipped with fastrecur (see README "The pretrained model"): ``<name>.pt`` holds the weights and
run config (a fastrecur checkpoint without optimizer state), ``<name>.json`` how it was trained
(command, commit, data seed, steps, time) and its sweep, ``<name>-log.csv`` its training curve."""
