from antrea_core.antctl.main import main

main()
