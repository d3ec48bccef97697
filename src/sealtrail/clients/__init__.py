"""HTTP clients (L2) for the services a signer talks to: transparency logs (and later CA, TSA).

Clients translate transport failures into sealtrail errors at the boundary and turn service
responses into bundle-ready JSON.
"""
