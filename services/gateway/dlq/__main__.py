from gateway.dlq.main import main

main()
