from leaklab.cli import main

main()
