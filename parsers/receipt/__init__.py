"""Receipt field readers over document text: retailer, purchase date, product, VAT number,
and the extras: buyer, receipt number, total."""
