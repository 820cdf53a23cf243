from vmv_sync.cli import main

main()
