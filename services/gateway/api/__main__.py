from gateway.api.main import main

main()
