from infadapter.cli import main

main()
