from crm_gateway.main import main

main()
