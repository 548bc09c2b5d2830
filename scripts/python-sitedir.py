#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Prints where a pure-Python package goes for the Python running this,
under PREFIX, so that that Python finds it with nothing set. Usage:
python-sitedir.py PREFIX

Debian's Python looks in /usr/local/lib/python3.X/dist-packages (its
posix_local scheme) and /usr/lib/python3/dist-packages (deb_system), not
in the site-packages of the upstream schemes, which is where meson's own
choice lands on Debian 12; elsewhere the upstream scheme is right."""

import sys
import sysconfig

prefix = sys.argv[1].rstrip("/") or "/"
schemes = sysconfig.get_scheme_names()
if "posix_local" in schemes and prefix == "/usr/local":
    path = sysconfig.get_path("purelib", "posix_local", vars={"base": "/usr", "platbase": "/usr"})
elif "deb_system" in schemes and prefix == "/usr":
    path = sysconfig.get_path("purelib", "deb_system", vars={"base": "/usr", "platbase": "/usr"})
else:
    path = sysconfig.get_path("purelib", "posix_prefix", vars={"base": prefix, "platbase": prefix})
print(path)
