"""Reading and writing signal files (EDF/EDF+/BDF, our HDF5 recordings)."""
