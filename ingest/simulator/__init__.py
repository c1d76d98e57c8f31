"""A line simulator that plays a plant file's machines over OPC UA and Modbus TCP.

It stands in for real PLCs in tests, benchmarks and demos; it stores nothing and knows
nothing of the database or of the collectors that read it.
"""
