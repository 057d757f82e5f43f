#!/bin/sh
# A stand-in for an application server: prints which release it serves.
cd "$(dirname "$0")" && echo "serving $(pwd -P) at revision $(cat REVISION 2>/dev/null || echo unknown)"
