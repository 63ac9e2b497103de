from gateway.indexer.main import main

main()
