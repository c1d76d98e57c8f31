"""The MES core: typed models of the transactional tables and the services that change them.

Services take a session and never commit; the caller owns the transaction.
"""
