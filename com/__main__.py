"""`python -m com`: the same command line as `com`."""

from com.cli import main

main()
