"""Development tools, kept out of the production package and image: the synthetic tenant generator,
the local Microsoft Graph and the benchmark. `make install` installs them beside mspbyte_dagster;
deploy/Dockerfile copies only mspbyte_dagster, so production never carries a fake Graph or its
certificate authority."""
