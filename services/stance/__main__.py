from stance.main import main

main()
