from jailer.main import main

main()
