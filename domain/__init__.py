"""The pay-in domain: payment orders, attempts, money, ledger rules and the PSP port.

Nothing here imports web, database or HTTP-client code.
"""
