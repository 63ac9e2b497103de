from emotion.main import main

main()
