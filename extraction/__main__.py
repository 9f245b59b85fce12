from extraction.cli import main

main()
