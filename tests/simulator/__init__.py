"""Instance simulator: one easydb 5 or fylr instance as a WSGI app (see store.py for the data contract).

    sim = datagen.generate("fylr", seed=1, size="tiny")
    server = server.serve(sim)            # running on 127.0.0.1:<port>
"""
